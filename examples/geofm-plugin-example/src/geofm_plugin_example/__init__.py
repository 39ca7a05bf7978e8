"""An example third-party geofm plugin (source ``example``)."""
