"""The reference control-plane app: reconcile loop, status stamping, standalone and controller wiring."""
