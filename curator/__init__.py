"""curator: product-image curation on Ray Serve."""
__version__ = "0.1.0"
