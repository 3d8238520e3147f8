"""What is on the board: capture, clocks, storage; each seam a Protocol with a real and a simulated backend."""
