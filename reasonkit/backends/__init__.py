"""Generation engines behind one interface: ``generate(list[GenRequest]) -> list[GenResult]``."""
