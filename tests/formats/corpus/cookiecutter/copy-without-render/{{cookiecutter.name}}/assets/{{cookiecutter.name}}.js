const tpl = "{{ not rendered }}";
