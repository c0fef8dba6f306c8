"""U-GAT-IT (Kim et al., ICLR 2020): networks, ablation switches, training step, translation, import
of official checkpoints. Importing the package registers the method as `ugatit`."""

from ugatit import method, released  # noqa: F401  (registers "ugatit" and its released-checkpoint loader)
