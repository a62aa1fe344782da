"""The import graph: no cycle between packages, no import against the layers table."""

import subprocess
import sys
from pathlib import Path

from helpdesk.tools import layers
from helpdesk.tools.layers import Import

ROOT = Path(__file__).resolve().parents[1]


def test_the_project_import_graph_is_clean() -> None:
    run = subprocess.run([sys.executable, "-m", "helpdesk.tools.layers"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    known = f" but {len(layers.KNOWN_FOLDER_CYCLES)} known" if layers.KNOWN_FOLDER_CYCLES else ""
    assert f"no package cycle, no folder cycle{known}, no layer broken" in run.stdout


def test_profiles_read_no_calls_module() -> None:
    # The screen pop makes calls use profiles; profiles get the calls they show handed in.
    reach = {edge.target for edge in layers.all_imports() if edge.source.startswith("helpdesk.profiles.")
             and layers.layer_of(edge.source).name != "api"}
    assert not {target for target in reach if target.startswith("helpdesk.calls")}, reach


def test_every_module_has_a_layer_and_the_named_ones_the_right_one() -> None:
    for module in layers.project_modules():
        layers.layer_of(module)  # raises for a module no row covers
    expected = {"helpdesk.app": "wiring", "helpdesk.pages": "wiring", "helpdesk.web.templating": "page",
                "helpdesk.tickets.views": "page", "helpdesk.tickets.api": "api",
                "helpdesk.channels.line.service": "adapter", "telephony.twilio": "adapter",
                "helpdesk.realtime.api": "socket", "helpdesk.realtime.hub": "hub",
                "helpdesk.tickets.models": "tables", "helpdesk.tickets.service": "domain",
                "helpdesk.outbox.tasks": "jobs", "helpdesk.db": "storage",
                "helpdesk.tickets.inbox_views": "page", "helpdesk.calls.settings_models": "tables",
                "helpdesk.settings_api": "api", "helpdesk.calls.recent": "domain"}
    assert {module: layers.layer_of(module).name for module in expected} == expected


def test_function_level_and_relative_imports_count(tmp_path: Path) -> None:
    source = tmp_path / "helpdesk" / "tickets" / "service.py"
    source.parent.mkdir(parents=True)
    source.write_text("def later():\n    from helpdesk.web import templating\n"
                      "    from ..customers import service\n")
    modules = {"helpdesk.tickets.service": source, "helpdesk.web.templating": source,
               "helpdesk.customers.service": source, "helpdesk.web": source}
    layers_root = layers.ROOT
    layers.ROOT = tmp_path
    try:
        found = list(layers.imports_of("helpdesk.tickets.service", source, modules))
    finally:
        layers.ROOT = layers_root
    assert {edge.target for edge in found} == {"helpdesk.web.templating", "helpdesk.customers.service"}


def test_a_service_importing_a_page_is_reported() -> None:
    edge = Import("helpdesk.tickets.service", "helpdesk.web.templating", 3)
    assert layers.layer_violations([edge]) == [
        "helpdesk.tickets.service:3: domain imports page module helpdesk.web.templating"]


def test_the_hub_and_the_storage_kit_may_not_import_a_domain() -> None:
    edges = [Import("helpdesk.realtime.hub", "helpdesk.tickets.service", 1),
             Import("helpdesk.storage.prepared", "helpdesk.customers.service", 2),
             Import("helpdesk.db", "helpdesk.calls.models", 3)]
    assert len(layers.layer_violations(edges)) == 3


def test_two_services_importing_each_other_are_a_cycle() -> None:
    edges = [Import("helpdesk.calls.service", "helpdesk.profiles.service", 1),
             Import("helpdesk.profiles.service", "helpdesk.calls.log", 2),
             Import("helpdesk.calls.views", "helpdesk.profiles.service", 3)]
    [cycle] = layers.package_cycles(edges)
    assert cycle.startswith("cycle between 2 packages: helpdesk.calls, helpdesk.profiles")


def test_a_page_kit_wiring_the_pages_built_on_it_is_a_cycle() -> None:
    edges = [Import("helpdesk.web.pages", "helpdesk.tickets.views", 1),
             Import("helpdesk.tickets.views", "helpdesk.web.templating", 2)]
    [cycle] = layers.package_cycles(edges)
    assert "helpdesk.tickets [page], helpdesk.web [page]" in cycle


def test_a_page_using_a_service_that_uses_its_package_is_no_cycle() -> None:
    edges = [Import("helpdesk.customers.views", "helpdesk.tickets.service", 1),
             Import("helpdesk.tickets.service", "helpdesk.customers.service", 2)]
    assert layers.package_cycles(edges) == []


JOB_AND_SERVICE_LOOP = [Import("helpdesk.assignment.tasks", "helpdesk.tickets.ingest", 19),
                        Import("helpdesk.tickets.ingest", "helpdesk.assignment.service", 12)]


def test_a_folder_s_job_and_services_are_one_node() -> None:
    assert layers.package_cycles(JOB_AND_SERVICE_LOOP) == []
    [cycle] = layers.folder_cycles(JOB_AND_SERVICE_LOOP, known={})
    assert cycle == ("cycle between 2 folders: helpdesk.assignment, helpdesk.tickets\n"
                     "  helpdesk.assignment -> helpdesk.tickets  (helpdesk.assignment.tasks:19)\n"
                     "  helpdesk.tickets -> helpdesk.assignment  (helpdesk.tickets.ingest:12)")


def test_jobs_of_two_folders_reaching_each_other_s_services_are_a_folder_cycle() -> None:
    edges = [Import("helpdesk.outbox.tasks", "helpdesk.tickets.service", 1),
             Import("helpdesk.tickets.tasks", "helpdesk.outbox.service", 2)]
    assert layers.package_cycles(edges) == []
    [cycle] = layers.folder_cycles(edges, known={})
    assert cycle.startswith("cycle between 2 folders: helpdesk.outbox, helpdesk.tickets")


def test_tables_pages_and_api_stay_apart_from_their_folder() -> None:
    edges = [Import("helpdesk.profiles.service", "helpdesk.calls.models", 1),  # tables: the floor
             Import("helpdesk.calls.announce", "helpdesk.profiles.service", 2),
             Import("helpdesk.profiles.api", "helpdesk.calls.recent", 3),  # the API composes both
             Import("helpdesk.customers.views", "helpdesk.calls.recent", 4),
             Import("helpdesk.calls.tasks", "helpdesk.customers.service", 5)]
    assert layers.folder_cycles(edges, known={}) == []


def test_a_known_folder_cycle_is_allowed_until_it_is_gone() -> None:
    known = {frozenset({"helpdesk.assignment", "helpdesk.tickets"}): "being cut"}
    assert layers.folder_cycles(JOB_AND_SERVICE_LOOP, known=known) == []
    assert layers.folder_cycles(JOB_AND_SERVICE_LOOP[:1], known=known) == [
        "known folder cycle helpdesk.assignment, helpdesk.tickets is gone: remove it from "
        "KNOWN_FOLDER_CYCLES"]
    grown = [*JOB_AND_SERVICE_LOOP, Import("helpdesk.tickets.service", "helpdesk.sla.service", 7),
             Import("helpdesk.sla.tasks", "helpdesk.tickets.service", 8)]
    [bigger, gone] = layers.folder_cycles(grown, known=known)
    assert bigger.startswith("cycle between 3 folders: helpdesk.assignment, helpdesk.sla, helpdesk.tickets")
    assert gone.startswith("known folder cycle helpdesk.assignment, helpdesk.tickets is gone")


def test_the_known_folder_cycles_are_those_of_the_project() -> None:
    found = layers.cycles(layers.all_imports(), layers.folder_of)
    assert {frozenset(cycle.members) for cycle in found} == set(layers.KNOWN_FOLDER_CYCLES)
