"""Estimators and closed forms, generic over models that return TFP distributions: the
whole-split rate, distortion and ELBO (`elbo`), likelihood bounds and mutual information
(`information`), a decoder's rate-distortion curve and BDMC bounds by annealed importance
sampling (`ais`), the Henze-Zirkler normality statistic (`henze_zirkler`), the smooth k-NN
two-sample statistic (`two_sample`) and the LiBI paper's failure cases in closed form
(`global_optima`)."""
