"""Plumbing shared by the library and its command lines: gin and absl (`cli`), crash-safe
writes (`files`), stateless seeds (`seeds`) and the registry of gin names
(`configurables`)."""
