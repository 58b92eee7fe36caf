"""Feature repositories used by the tests, unlike the demo (loaded through FEATURE_PLATFORM_REPO)."""
