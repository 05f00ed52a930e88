"""Guild sync: keep a community website's copy of a Discord guild true, in bounded requests."""
