"""Server messages people see in toasts and on error pages, marked for the catalogues.

Services raise errors in English; the page layer shows them through gettext, so every message
a person may meet is listed here for extraction (``N_`` only marks, it translates nothing).
"""


def N_(message: str) -> str:
    """Mark ``message`` for extraction."""
    return message


STATUS_NAMES = {
    "unhandled": N_("Unhandled"), "in_progress": N_("In progress"), "pending": N_("On hold"),
    "resolved": N_("Resolved"), "no_action": N_("No action needed"),
}

# What an error page or toast says when the detail itself has no translation.
BY_STATUS = {
    400: N_("The request was not valid."), 403: N_("You may not do this."),
    404: N_("Not found."), 409: N_("Someone else changed this first. Reload and try again."),
    413: N_("That is too large."), 422: N_("Please check what you entered."),
    423: N_("This account is locked."), 500: N_("Something went wrong."),
}

KNOWN = [
    N_("a control has a value that is not offered"),
    N_("assignee_id: no such active user"),
    N_("assignee_id: that user is not a member of the ticket's inbox"),
    N_("cursor is not valid"),
    N_("email and password are required"),
    N_("email: not an email address"),
    N_("filter: not a valid value"),
    N_("inbox: no such inbox"),
    N_("language or time zone: not offered"),
    N_("language: not offered"),
    N_("member: no such user"),
    N_("name and body are required"),
    N_("name: required"),
    N_("not an id"),
    N_("password: at least 8 characters"),
    N_("pending_reason: 保留 needs a reason"),
    N_("phone_number: not a phone number"),
    N_("write something before sending"),
    N_("you cannot demote or deactivate yourself"),
    N_("network: not an IP address or CIDR block"),
    N_("this list would lock out your own address"),
    N_("that network is already allowed"),
    N_("a reply template with that name exists"),
    N_("an inbox with that name exists"),
    N_("someone else holds this ticket"),
    N_("the ticket changed since you loaded it"),
    N_("only supervisors assign tickets to others"),
    N_("only supervisors take a ticket from someone else"),
    N_("your role may not do this"),
    N_("account locked after repeated failures; try again later"),
    N_("attachment not found"),
    N_("customer not found"),
    N_("inbox not found"),
    N_("reply template not found"),
    N_("ticket not found"),
    N_("user not found"),
    N_("not signed in"),
    N_("wrong email or password"),
    N_("the form expired or did not come from this site; reload the page and try again"),
    N_("your network address is not allowed"),
    N_("Not Found"),
    N_("Method Not Allowed"),
    N_("User created"),
    N_("Saved"),
    N_("Unlocked"),
]
