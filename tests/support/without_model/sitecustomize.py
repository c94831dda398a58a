"""On PYTHONPATH of a test process, this makes the model packages unimportable, as in the light image
(deploy/docker/Dockerfile): the e2e mesh runs gateway, context, reward and the worker this way."""

import sys

BLOCKED = ("torch", "onnxruntime", "kenlm", "safetensors", "silero_vad")


class _Uninstalled:
    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201 (importlib protocol)
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed in the light image")
        return None


sys.meta_path.insert(0, _Uninstalled())
