"""Fixtures every test directory may use."""

from tests.sentry_recording import recorded_sentry

__all__ = ["recorded_sentry"]
