"""Reply templates operators insert into the composer."""
