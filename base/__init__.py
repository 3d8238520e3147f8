"""What every layer shares and is not the board: clocks and timers, media value types, H.264
parameter sets, the bitmap font. Pure code; imports nothing of the project."""
