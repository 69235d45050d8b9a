// The Python module sdekit._C built ahead of time by setup.py.  It is empty on
// purpose: importing it loads this shared library, whose static initialisers
// (TORCH_LIBRARY_FRAGMENT / TORCH_LIBRARY_IMPL in each csrc/*.cu) register the
// ops as torch.ops.sdekit.<name>.  No bindings list to keep in sync.
#include <Python.h>

static struct PyModuleDef sdekit_c_module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&sdekit_c_module); }
