"""OpenMM worker process: evaluates energies and forces for batches of positions.

Run as a plain script (``python _openmm_worker.py``) so that it imports only numpy and
OpenMM, not torch or mlmol. Messages are length-prefixed pickles on stdin/stdout:
first ``(system_xml, platform_name, properties)``, answered by ``("ready", platform)``;
then position arrays ``[b, n_atoms, 3]`` (nm, float64), answered by
``("ok", energies [b] kJ/mol, forces [b, n_atoms, 3] kJ/mol/nm, n_failed)``. End of
input (the parent closed the pipe or died) ends the worker.
"""

import os
import pickle
import struct
import sys

HEADER = struct.Struct("!Q")


def read_message(stream):
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    return pickle.loads(stream.read(size))


def write_message(stream, obj) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def main() -> None:
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the message channel
    try:
        import numpy as np
        import openmm

        system_xml, platform_name, properties = read_message(stdin)
        system = openmm.XmlSerializer.deserialize(system_xml)
        platform = openmm.Platform.getPlatformByName(platform_name)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform, properties)
    except Exception as error:  # report and stop: the parent raises a clear error
        write_message(stdout, ("error", f"{type(error).__name__}: {error}"))
        return
    write_message(stdout, ("ready", platform_name))
    n = system.getNumParticles()
    while True:
        positions = read_message(stdin)
        if positions is None:
            return
        if isinstance(positions, str) and positions == "crash":  # used by the tests
            os._exit(1)
        energies = np.empty(len(positions))
        forces = np.zeros((len(positions), n, 3))
        failed = 0
        for i, xyz in enumerate(positions):
            try:
                context.setPositions(xyz)
                state = context.getState(getEnergy=True, getForces=True)
                energies[i] = state.getPotentialEnergy()._value  # kJ/mol
                forces[i] = state.getForces(asNumpy=True)._value  # kJ/mol/nm
            except Exception:  # e.g. NaN coordinates: an infinite energy the caller counts
                energies[i] = np.inf
                failed += 1
        write_message(stdout, ("ok", energies, forces, failed))


if __name__ == "__main__":
    main()
