// An (empty) CPython extension module, so that the package build installs the kernels
// where the import system finds them (editable installs included); the kernels
// themselves are plain C functions called through ctypes.
#include <Python.h>

static struct PyModuleDef native_module = {PyModuleDef_HEAD_INIT, "_native",
                                           "cxrzoo native kernels (C ABI, loaded with ctypes)", -1, nullptr};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&native_module); }
