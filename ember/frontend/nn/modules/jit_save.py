"""`Module.save`: torch's ScriptModule.save on the modules ember.jit returns."""
from __future__ import annotations


class ScriptModuleSave:
    """`m.save(f, _extra_files=None)` on a module that ember.jit's script, trace, freeze
    or load returned (torch's ScriptModule.save: `torch.jit.script(model).save(path)`);
    any other module has no `save`, as torch's nn.Module has none."""

    def __get__(self, module, owner=None):
        if module is None:
            return self
        if module.__dict__.get("_ember_jit_kind") != "module":
            raise AttributeError("save")        # Module.__getattr__ words the error
        from ...jit_api import save        # jit_api imports nn's Module

        def save_module(f, _extra_files=None):
            save(module, f, _extra_files)
        return save_module


__all__ = ["ScriptModuleSave"]
