"""segmentation_models_pytorch decoders and encoders as geofm components (source ``smp``)."""
