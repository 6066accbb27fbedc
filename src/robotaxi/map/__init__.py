"""Road networks: building (netconvert/netgenerate), caching, loading into our map types."""
