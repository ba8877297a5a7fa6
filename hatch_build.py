"""The build's one hook: an editable install gets ``_vram_eval_checkout.pth`` (tools/editable/),
which maps the import name vram_eval to the checkout's engine/ folder. Wheels and sdists are
built as pyproject.toml says, untouched."""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class EditableImportName(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        if version == "editable":
            build_data["force_include_editable"]["tools/editable/_vram_eval_checkout.pth"] = "_vram_eval_checkout.pth"
