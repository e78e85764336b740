"""One chat turn: safety → perceive → retrieve → decide → respond → remember (`engine`)."""
