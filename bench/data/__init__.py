"""Datasets: the five paper datasets and their downloads (datasets.py, download.py), the synthetic shapes
(synthetic.py), the training and test pipelines (pipeline.py) and the fingerprint that names a dataset's
contents in run identities (fingerprint.py)."""
