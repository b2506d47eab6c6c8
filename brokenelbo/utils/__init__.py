"""Plumbing shared by the library and its command lines: gin flags and one-line errors
(`cli`), crash-safe writes and strict JSON (`files`), file locks (`locks`) and stateless
seeds (`seeds`)."""
