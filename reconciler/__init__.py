"""reconciler: polls provider status APIs to repair missed and out-of-order callbacks (issue 5)."""
