"""Running the command-line tools of tools/ from the tests: in process as modules, or as a user runs them."""
import importlib.util
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(name, module_name=None):
    """tools/<name>.py as a module (its ``main(argv)`` runs the tool in this process)."""
    spec = importlib.util.spec_from_file_location(module_name or name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_workspace(tmp_path_factory, name):
    """A new working directory where the tools find the repository's configs/ as a user's checkout has them."""
    ws = tmp_path_factory.mktemp(name)
    os.symlink(osp.join(ROOT, 'configs'), ws / 'configs')
    return ws
