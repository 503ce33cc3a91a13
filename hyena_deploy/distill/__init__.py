"""Distillation of implicit long filters into modal (state-space) form."""
