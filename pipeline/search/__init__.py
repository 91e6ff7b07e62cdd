"""The search loop shared by every method."""
