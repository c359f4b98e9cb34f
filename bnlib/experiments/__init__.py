"""Which runs each figure needs, at a profile's scale. Chapters and claims both call these."""
