"""Estimators and closed forms, generic over models that return TFP distributions: the
whole-split rate, distortion and ELBO (`elbo`), likelihood bounds and mutual information
(`information`), a decoder's rate-distortion curve and BDMC bounds by annealed importance
sampling (`ais`), log p(x) of a model with a 2-D latent by adaptive quadrature
(`exact_likelihood`), I_q(X;Z) and KL(q(z) || p(z)) under a known data distribution with no
log N cap (`population`), the Henze-Zirkler normality statistic (`henze_zirkler`), the
smooth k-NN two-sample statistic (`two_sample`) and the LiBI paper's failure cases in closed
form (`global_optima`)."""
