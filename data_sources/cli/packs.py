"""Pack CLI: ``flask --app app pack init NAME --boundary FILE [--sample FILE --mapping NAME_OR_PATH]
[--country CC] [--timezone TZ] …`` builds a city pack folder from data (data_sources/pack_init.py)
and prints what to review."""
from __future__ import annotations

import click
from flask import Flask

from data_sources.pack_init import DEFAULT_TOLERANCE_M


def register(server: Flask) -> None:
    @server.cli.group("pack")
    def pack_group():
        """City packs."""

    @pack_group.command("init")
    @click.argument("name")
    @click.option("--boundary", required=True, type=click.Path(exists=True),
                  help="Districts: GeoJSON, Shapefile (.shp or .zip), GeoPackage … in any CRS.")
    @click.option("--name-field", default=None, help="Column of the district names (default: guessed).")
    @click.option("--code-field", default=None, help="Column of the district codes (default: guessed).")
    @click.option("--source-crs", default=None, help="CRS of a boundary file that names none (e.g. EPSG:2263).")
    @click.option("--tolerance", default=DEFAULT_TOLERANCE_M, show_default=True, type=float,
                  help="Simplification tolerance of the borders, metres (0: none).")
    @click.option("--grid-size", default=None, type=float,
                  help="Grid cell size, metres (default: chosen for about 1000 grids).")
    @click.option("--sample", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="A sample export: its agencies and types become departments and categories.")
    @click.option("--mapping", "mapping_ref", default=None,
                  help="The mapping that reads --sample (nyc311, sf311, open311, native or a .toml path).")
    @click.option("--sample-limit", default=None, type=int, help="Read at most this many sample records.")
    @click.option("--country", default=None, help="ISO country code of the holiday calendar (CN, US, …).")
    @click.option("--subdivision", default=None, help="State/province of the holiday calendar (e.g. NY).")
    @click.option("--timezone", default=None, help="IANA time zone (default Asia/Shanghai for CN).")
    @click.option("--title", default=None, help="Title shown on the screens (default: NAME).")
    @click.option("--office-hours", default="09:00-17:00", show_default=True,
                  help="Working periods, e.g. 08:30-12:00,13:30-17:30.")
    @click.option("--default-limit", default=5.0, show_default=True, type=float,
                  help="Time limit of every category.")
    @click.option("--default-unit", default="work_days", show_default=True,
                  type=click.Choice(["work_hours", "work_days", "natural_hours"]))
    @click.option("--out", default=None, type=click.Path(file_okay=False),
                  help="Pack folder (default: data_sources/packs/NAME).")
    @click.option("--force", is_flag=True, help="Overwrite the pack files of an existing folder.")
    def pack_init(name, boundary, name_field, code_field, source_crs, tolerance, grid_size, sample, mapping_ref,
                  sample_limit, country, subdivision, timezone, title, office_hours, default_limit, default_unit,
                  out, force):
        """Build the city pack NAME from a boundary file and (optionally) a sample export."""
        from data_sources.pack_init import PackInitError, init_pack
        from data_sources.packs import PackError
        try:
            report = init_pack(name, boundary, out=out, name_field=name_field, code_field=code_field,
                               source_crs=source_crs, tolerance_m=tolerance, grid_m=grid_size, sample=sample,
                               mapping=mapping_ref, sample_limit=sample_limit, country=country,
                               subdivision=subdivision, timezone=timezone, title=title, office_hours=office_hours,
                               default_limit=default_limit, default_unit=default_unit, overwrite=force)
        except (PackInitError, PackError) as exc:
            raise click.ClickException(str(exc)) from None
        for line in report.lines():
            click.echo(line)
        click.echo(f"use it: CITYOPS_PACK={report.folder} flask --app app init-db")
