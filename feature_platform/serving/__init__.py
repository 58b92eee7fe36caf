"""Serving over HTTP: Feast's feature server on the platform's registry and online store."""
