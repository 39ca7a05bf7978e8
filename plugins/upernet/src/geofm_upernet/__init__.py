"""UperNet decoder (MMSeg definition) for geofm (source ``upernet``)."""
