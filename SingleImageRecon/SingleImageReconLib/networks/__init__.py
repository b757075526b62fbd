"""The networks: depth and landmark models, their losses, training, inference and MONAI bundles."""
