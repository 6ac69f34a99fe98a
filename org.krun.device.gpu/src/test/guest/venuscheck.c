// venuscheck: the Vulkan program of org.krun.device.gpu's Venus guest test. In a Debian guest with Mesa's
// Venus driver it finds the Venus device (its name says "Venus" and the host driver behind it), runs a compute
// shader (square.comp: element i of a storage buffer becomes i * i + 7) over COUNT elements in host-visible
// memory (which Venus maps from the host into the guest), and checks every element and their sum. One line
// per check ("ok ..." or "FAIL ..."), the result line, and "venuscheck passed" at the end.
// Usage: venuscheck COUNT
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

#include "square.h"

static int failed;

static void check(int ok, const char *what, VkResult r) {
    if (ok) {
        printf("ok %s\n", what);
    } else {
        printf("FAIL %s (VkResult %d)\n", what, (int) r);
        failed = 1;
    }
    fflush(stdout);
}

#define VK(call, what) do { VkResult r_ = (call); check(r_ == VK_SUCCESS, what, r_); if (r_ != VK_SUCCESS) return 1; } while (0)

int main(int argc, char **argv) {
    uint32_t count = argc > 1 ? (uint32_t) strtoul(argv[1], NULL, 10) : 4096;
    if (count == 0 || count > (1u << 24)) {
        printf("FAIL count %u out of range\n", count);
        return 1;
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "venuscheck",
                             .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkInstance instance;
    VK(vkCreateInstance(&ici, NULL, &instance), "instance");

    uint32_t n = 0;
    VK(vkEnumeratePhysicalDevices(instance, &n, NULL), "enumerate devices");
    VkPhysicalDevice devices[16];
    if (n > 16) {
        n = 16;
    }
    VK(vkEnumeratePhysicalDevices(instance, &n, devices), "list devices");
    VkPhysicalDevice gpu = VK_NULL_HANDLE;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(devices[i], &p);
        printf("device %u: %s (api %u.%u.%u, type %d)\n", i, p.deviceName, VK_API_VERSION_MAJOR(p.apiVersion),
               VK_API_VERSION_MINOR(p.apiVersion), VK_API_VERSION_PATCH(p.apiVersion), (int) p.deviceType);
        if (strstr(p.deviceName, "Venus") != NULL && gpu == VK_NULL_HANDLE) {
            gpu = devices[i];
            printf("venus device: %s\n", p.deviceName);
        }
    }
    check(gpu != VK_NULL_HANDLE, "venus device", VK_ERROR_INITIALIZATION_FAILED);
    if (gpu == VK_NULL_HANDLE) {
        return 1;
    }

    uint32_t nq = 8;
    VkQueueFamilyProperties qf[8];
    vkGetPhysicalDeviceQueueFamilyProperties(gpu, &nq, qf);
    uint32_t family = UINT32_MAX;
    for (uint32_t i = 0; i < nq; i++) {
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            family = i;
            break;
        }
    }
    check(family != UINT32_MAX, "compute queue", VK_ERROR_FEATURE_NOT_PRESENT);
    if (family == UINT32_MAX) {
        return 1;
    }
    float priority = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = family,
                                   .queueCount = 1, .pQueuePriorities = &priority};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
    VkDevice device;
    VK(vkCreateDevice(gpu, &dci, NULL, &device), "device");
    VkQueue queue;
    vkGetDeviceQueue(device, family, 0, &queue);

    VkDeviceSize size = (VkDeviceSize) count * sizeof(uint32_t);
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                              .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkBuffer buffer;
    VK(vkCreateBuffer(device, &bci, NULL, &buffer), "buffer");
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(device, buffer, &req);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(gpu, &mp);
    uint32_t type = UINT32_MAX;
    VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    for (uint32_t i = 0; i < mp.memoryTypeCount; i++) {
        if ((req.memoryTypeBits & (1u << i)) && (mp.memoryTypes[i].propertyFlags & want) == want) {
            type = i;
            break;
        }
    }
    check(type != UINT32_MAX, "host-visible coherent memory type", VK_ERROR_FEATURE_NOT_PRESENT);
    if (type == UINT32_MAX) {
        return 1;
    }
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = type};
    VkDeviceMemory memory;
    VK(vkAllocateMemory(device, &mai, NULL, &memory), "allocate memory");
    VK(vkBindBufferMemory(device, buffer, memory, 0), "bind memory");
    uint32_t *values;
    VK(vkMapMemory(device, memory, 0, size, 0, (void **) &values), "map memory");
    memset(values, 0xab, size);

    VkShaderModuleCreateInfo smi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = sizeof(square_spv),
                                    .pCode = square_spv};
    VkShaderModule shader;
    VK(vkCreateShaderModule(device, &smi, NULL, &shader), "shader module");
    VkDescriptorSetLayoutBinding binding = {.binding = 0, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                            .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo dsli = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = 1,
                                            .pBindings = &binding};
    VkDescriptorSetLayout setLayout;
    VK(vkCreateDescriptorSetLayout(device, &dsli, NULL, &setLayout), "descriptor set layout");
    VkPushConstantRange push = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = sizeof(uint32_t)};
    VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &setLayout, .pushConstantRangeCount = 1, .pPushConstantRanges = &push};
    VkPipelineLayout layout;
    VK(vkCreatePipelineLayout(device, &pli, NULL, &layout), "pipeline layout");
    VkComputePipelineCreateInfo cpi = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = shader, .pName = "main"},
        .layout = layout};
    VkPipeline pipeline;
    VK(vkCreateComputePipelines(device, VK_NULL_HANDLE, 1, &cpi, NULL, &pipeline), "compute pipeline");

    VkDescriptorPoolSize poolSize = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = 1};
    VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 1, .poolSizeCount = 1,
                                      .pPoolSizes = &poolSize};
    VkDescriptorPool pool;
    VK(vkCreateDescriptorPool(device, &dpi, NULL, &pool), "descriptor pool");
    VkDescriptorSetAllocateInfo dsai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = pool,
                                        .descriptorSetCount = 1, .pSetLayouts = &setLayout};
    VkDescriptorSet set;
    VK(vkAllocateDescriptorSets(device, &dsai, &set), "descriptor set");
    VkDescriptorBufferInfo dbi = {.buffer = buffer, .offset = 0, .range = size};
    VkWriteDescriptorSet write = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = 0,
                                  .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &dbi};
    vkUpdateDescriptorSets(device, 1, &write, 0, NULL);

    VkCommandPoolCreateInfo cpci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO, .queueFamilyIndex = family};
    VkCommandPool cmdPool;
    VK(vkCreateCommandPool(device, &cpci, NULL, &cmdPool), "command pool");
    VkCommandBufferAllocateInfo cbai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = cmdPool,
                                        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkCommandBuffer cmd;
    VK(vkAllocateCommandBuffers(device, &cbai, &cmd), "command buffer");
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                      .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK(vkBeginCommandBuffer(cmd, &begin), "begin commands");
    vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
    vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(cmd, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(uint32_t), &count);
    vkCmdDispatch(cmd, (count + 63) / 64, 1, 1);
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &barrier, 0, NULL, 0,
                         NULL);
    VK(vkEndCommandBuffer(cmd), "end commands");
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VkFence fence;
    VK(vkCreateFence(device, &fci, NULL, &fence), "fence");
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cmd};
    VK(vkQueueSubmit(queue, 1, &si, fence), "submit");
    VK(vkWaitForFences(device, 1, &fence, VK_TRUE, 120ull * 1000 * 1000 * 1000), "wait for the dispatch");

    uint64_t sum = 0;
    uint32_t wrong = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t want = i * i + 7u;
        if (values[i] != want) {
            if (wrong < 5) {
                printf("element %u is 0x%08x, not 0x%08x\n", i, values[i], want);
            }
            wrong++;
        }
        sum += values[i];
    }
    printf("venus compute: %u values, sum %" PRIu64 ", last %u\n", count, sum, values[count - 1]);
    check(wrong == 0, "compute result", VK_SUCCESS);

    vkUnmapMemory(device, memory);
    vkDestroyFence(device, fence, NULL);
    vkDestroyCommandPool(device, cmdPool, NULL);
    vkDestroyDescriptorPool(device, pool, NULL);
    vkDestroyPipeline(device, pipeline, NULL);
    vkDestroyPipelineLayout(device, layout, NULL);
    vkDestroyDescriptorSetLayout(device, setLayout, NULL);
    vkDestroyShaderModule(device, shader, NULL);
    vkFreeMemory(device, memory, NULL);
    vkDestroyBuffer(device, buffer, NULL);
    vkDestroyDevice(device, NULL);
    vkDestroyInstance(instance, NULL);
    if (failed) {
        return 1;
    }
    printf("venuscheck passed\n");
    return 0;
}
