"""What is on the board: video capture, displays, audio, GPIO, serial ports, storage, sensors, input; each seam an
interface with a real and a simulated backend."""
