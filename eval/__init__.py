"""Evaluation: Inception features (torch-fidelity's TF-compatible Inception-v3), a content-keyed
feature cache, KID estimators (the paper's TF-GAN blocks, torch-fidelity's subsets, mean KID), FID,
and the `python -m eval score` command line."""
