"""One frame from render to dream: colour, temporal coherence and the frame pipeline every caller shares."""
