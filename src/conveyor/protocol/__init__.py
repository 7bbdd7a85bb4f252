"""Wire protocols: bytes in, typed requests out, and back (sans-IO)."""
