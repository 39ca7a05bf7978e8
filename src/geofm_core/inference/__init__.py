"""Inference: tiled prediction over images and streaming over rasters of any size."""
