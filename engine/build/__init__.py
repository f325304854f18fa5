"""The classic image builder (POST /build)."""
