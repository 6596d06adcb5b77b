"""Print pip constraints that keep the torch and torchvision installed here (none where absent).

The versions are the distributions' own, as pip knows them: PyPI's Linux wheels report a local
build in `torch.__version__` ("2.14.1+cu130") that their metadata lacks ("2.14.1"), and pinning
the former makes pip look for a torch it cannot find. Colab's wheels carry it in both.
"""

from importlib.metadata import PackageNotFoundError, version

for name in ("torch", "torchvision"):
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        pass
