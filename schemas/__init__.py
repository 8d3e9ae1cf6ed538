"""Wire contracts of paysync: envelope, observation, downstream event. Pure: no I/O imports.

The JSON Schemas under ``schemas/json/`` describe the same shapes for other systems.
"""
