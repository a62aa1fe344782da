"""Replies point one way: tickets queue into the outbox, and the delivery reads tickets. The
kit itself knows no domain: a queue's table and work are handed to it."""

from helpdesk.tools import layers


def imported_packages(package: str) -> set[str]:
    """The ``helpdesk.*`` packages the modules of ``package`` import (itself left out)."""
    modules = layers.project_modules()
    found = set()
    for module, path in modules.items():
        if module == package or module.startswith(package + "."):
            for edge in layers.imports_of(module, path, modules):
                found.add(".".join(edge.target.split(".")[:2]))
    return found - {package}


def test_the_outbox_reads_no_ticket_and_the_delivery_does() -> None:
    assert not {"helpdesk.tickets", "helpdesk.customers", "helpdesk.inboxes"} & imported_packages(
        "helpdesk.outbox")
    assert {"helpdesk.tickets", "helpdesk.outbox"} <= imported_packages("helpdesk.delivery")
    assert "helpdesk.delivery" not in imported_packages("helpdesk.tickets")


def test_the_queue_and_the_periodic_loop_import_no_domain() -> None:
    assert imported_packages("helpdesk.background.queue") <= {"helpdesk.db", "helpdesk.storage"}
    assert imported_packages("helpdesk.periodic") == set()


def test_assignment_reads_tickets_tables_only_and_the_sweep_lives_with_the_tickets() -> None:
    modules = layers.project_modules()
    used = {edge.target for module, path in modules.items() if module.startswith("helpdesk.assignment")
            for edge in layers.imports_of(module, path, modules)}
    assert {target for target in used if target.startswith("helpdesk.tickets")} <= {
        "helpdesk.tickets.models"}
    assert "helpdesk.tickets.tasks" in modules and "helpdesk.assignment.tasks" not in modules
