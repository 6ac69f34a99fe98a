#version 450
// venuscheck's compute shader: each invocation writes i * i + 7 into element i of the storage buffer.
layout(local_size_x = 64) in;
layout(std430, set = 0, binding = 0) buffer Data {
    uint values[];
};
layout(push_constant) uniform Push {
    uint count;
};
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < count) {
        values[i] = i * i + 7u;
    }
}
