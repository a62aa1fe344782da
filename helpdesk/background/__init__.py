"""Background work: the leased queue rows are delivered or fetched from (``queue``), and every
job the app runs beside its requests, started in one place (``tasks``)."""
