"""Built-in trainers (registered through the public `reasonkit` entry-point group)."""
