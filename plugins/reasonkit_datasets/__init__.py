"""Built-in datasets (registered through the public `reasonkit` entry-point group)."""
