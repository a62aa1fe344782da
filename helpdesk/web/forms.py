"""Reading page forms, where every field arrives as text."""

from helpdesk.errors import BadInput


def form_id(value: str) -> int:
    """A row id typed or chosen in a form; 400 when it is not a number."""
    try:
        return int(value)
    except ValueError:
        raise BadInput("not an id") from None
