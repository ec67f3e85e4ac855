FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY dbfw ./dbfw
COPY rules ./rules
RUN pip install --no-cache-dir -c constraints.txt . && useradd --system dbfw
USER dbfw
EXPOSE 6432 8080
ENTRYPOINT ["dbfw"]
CMD ["serve", "-c", "/etc/dbfw/dbfw.yaml"]
