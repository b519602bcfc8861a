"""Declares the C extension only; pyproject.toml holds all the project's metadata."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "flexilib.kinds.native._native",
            sources=[
                "src/flexilib/kinds/native/_native.c",
                "src/flexilib/kinds/native/zigarena.c",
            ],
            include_dirs=["include"],
            depends=["include/flexilib.h", "src/flexilib/kinds/native/zigarena.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra"],
        )
    ]
)
