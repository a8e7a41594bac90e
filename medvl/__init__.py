"""medvl."""
