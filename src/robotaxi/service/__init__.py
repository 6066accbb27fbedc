"""The HTTP API, live streams and the web pages."""
