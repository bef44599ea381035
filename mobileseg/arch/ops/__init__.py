"""The op registry: one module per op family declares everything about its ops (`registry`)."""
