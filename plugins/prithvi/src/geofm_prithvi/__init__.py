"""Prithvi EO vision transformers (IBM/NASA) as geofm backbones (source ``prithvi``)."""
