"""Built-in uploaders (registered through the public `reasonkit` entry-point group)."""
